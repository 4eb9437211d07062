# PGDBM_CHECK_CFLAGS(VARIABLE, FLAGS)
# Append to VARIABLE each of FLAGS that the C compiler accepts with -Werror.
AC_DEFUN([PGDBM_CHECK_CFLAGS], [
  for pgdbm_flag in $2 ; do
    AC_MSG_CHECKING([whether $CC accepts $pgdbm_flag])
    pgdbm_save_CFLAGS=$CFLAGS
    pgdbm_save_LDFLAGS=$LDFLAGS
    dnl probe the positive form of -Wno-x: gcc accepts any -Wno-x silently
    pgdbm_probe=`echo "$pgdbm_flag" | sed 's/^-Wno-/-W/'`
    CFLAGS="$CFLAGS -Werror $pgdbm_probe"
    LDFLAGS="$LDFLAGS $pgdbm_probe"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [return 0;])],
      [AC_MSG_RESULT([yes]); $1="[$]$1 $pgdbm_flag"],
      [AC_MSG_RESULT([no])])
    CFLAGS=$pgdbm_save_CFLAGS
    LDFLAGS=$pgdbm_save_LDFLAGS
  done
])
