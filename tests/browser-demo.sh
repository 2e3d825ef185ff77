#!/bin/bash
# Placeholder: the browser test of the built-in page.
exit 77
