#!/bin/sh
# Debian's protoc; it finds the well-known types under /usr/include by itself.
exec /usr/bin/protoc "$@"
