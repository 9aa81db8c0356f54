#include <xnnpack.h>
#include <pthreadpool.h>
