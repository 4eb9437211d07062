/*
 * proxy.c — placeholder, being written.
 */
#include "config.h"

#include "proxy.h"

int pgt_proxy_placeholder;
