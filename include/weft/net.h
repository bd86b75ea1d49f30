/* weft/net.h — being written (issue 4). */
#ifndef WEFT_NET_H
#define WEFT_NET_H
#endif
