#include "webpage.h"

const char webpage_html[] = "<!DOCTYPE html>\n<title>epoll-broadcaster</title>\n";
const size_t webpage_html_len = sizeof(webpage_html) - 1;
