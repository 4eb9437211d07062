/*
 * pgdbm_attr.h — the compiler attributes the tool's headers share: the
 * must-check mark on every public function that can fail.
 *
 * Owns: nothing; macros only.
 *
 * Never: includes another header or defines anything but attributes.
 * (libpgoutput keeps its own PGO_MUSTCHECK in pgoutput.h so that the decoder
 * stays a library of its own.)
 */
#ifndef PGDBM_ATTR_H
#define PGDBM_ATTR_H

/*
 * A caller must look at the result: false, NULL, an error code or a status
 * that says the call failed. Where ignoring it is right, the call site says
 * why in an if (...) block; a (void) cast does not silence GCC.
 */
#if defined(__GNUC__) || defined(__clang__)
#define PGDBM_MUST_CHECK __attribute__((warn_unused_result))
#else
#define PGDBM_MUST_CHECK
#endif

#endif /* PGDBM_ATTR_H */
