/* weft/process.h — being written (issue 4). */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H
#endif
