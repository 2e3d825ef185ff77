#include "wsclient.h"

typedef int wsclient_placeholder_;
