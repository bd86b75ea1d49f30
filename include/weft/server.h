/* weft/server.h — being written (issue 4). */
#ifndef WEFT_SERVER_H
#define WEFT_SERVER_H
#endif
