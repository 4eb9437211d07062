/*
 * proxy.h — placeholder, being written.
 */
#ifndef PGT_PROXY_H
#define PGT_PROXY_H
#endif
