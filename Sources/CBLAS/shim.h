#include <cblas.h>

// LAPACK from the same OpenBLAS: Debian's libopenblas exports the Fortran LAPACK routines
// (ssyevd_, sgesvd_) but ships no LAPACKE header, so the two the training code needs are declared
// here (Fortran calling convention: every argument by pointer, column-major matrices; the trailing
// hidden string lengths are passed for the character arguments).
void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda, float *w,
             float *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobzLength, size_t uploLength);
void sgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, float *a, const int *lda, float *s,
             float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork, int *info,
             size_t jobuLength, size_t jobvtLength);
