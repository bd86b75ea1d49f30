/* weft/fs.h — being written (issue 4). */
#ifndef WEFT_FS_H
#define WEFT_FS_H
#endif
