// Declarations only: the preamble of callback.go, the file with //export functions.
#include <stdint.h>
typedef struct pb_object PyObject;
PyObject *pbGoCall(uintptr_t h, PyObject *args);
void pbGoRelease(uintptr_t h);
