/* weft/stream.h — being written (issue 4). */
#ifndef WEFT_STREAM_H
#define WEFT_STREAM_H
#endif
