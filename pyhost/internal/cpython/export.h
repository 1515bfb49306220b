// Declarations only: the preamble of callback.go, the file with //export functions.
#include <stdint.h>
typedef struct pb_object PyObject;
PyObject *pbGoCall(uintptr_t h, PyObject *args);
void pbGoRelease(uintptr_t h);
void pbChannelObserve(uintptr_t h, int sent, long long kind, long long seq, int handler, int bytes);
