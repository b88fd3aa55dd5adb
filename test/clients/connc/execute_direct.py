"""Runs statements with MariaDB Connector/C's mariadb_stmt_execute_direct.

Against a MariaDB server, Connector/C sends COM_STMT_PREPARE and a
COM_STMT_EXECUTE of statement id 0xFFFFFFFF ("the statement prepared last")
in one write, without waiting for the PREPARE's reply. The library is called
through ctypes, so no headers or compiler are needed, only libmariadb3.

Env: SW_HOST SW_PORT SW_USER SW_PASS SW_DB. Each argument is one statement;
one line per statement: "ok <affected rows>" or "err <errno> <message>".
"""
import ctypes
import os
import sys

lib = ctypes.CDLL("libmariadb.so.3")
vp, cp = ctypes.c_void_p, ctypes.c_char_p
lib.mysql_init.restype, lib.mysql_init.argtypes = vp, [vp]
lib.mysql_real_connect.restype = vp
lib.mysql_real_connect.argtypes = [vp, cp, cp, cp, cp, ctypes.c_uint, cp, ctypes.c_ulong]
lib.mysql_error.restype, lib.mysql_error.argtypes = cp, [vp]
lib.mysql_stmt_init.restype, lib.mysql_stmt_init.argtypes = vp, [vp]
lib.mariadb_stmt_execute_direct.restype = ctypes.c_int
lib.mariadb_stmt_execute_direct.argtypes = [vp, cp, ctypes.c_size_t]
lib.mysql_stmt_errno.restype, lib.mysql_stmt_errno.argtypes = ctypes.c_uint, [vp]
lib.mysql_stmt_error.restype, lib.mysql_stmt_error.argtypes = cp, [vp]
lib.mysql_stmt_affected_rows.restype, lib.mysql_stmt_affected_rows.argtypes = ctypes.c_ulonglong, [vp]
lib.mysql_stmt_close.restype, lib.mysql_stmt_close.argtypes = ctypes.c_char, [vp]
lib.mysql_close.argtypes = [vp]

env = os.environ
m = lib.mysql_init(None)
if not lib.mysql_real_connect(m, env["SW_HOST"].encode(), env["SW_USER"].encode(), env["SW_PASS"].encode(),
                              env["SW_DB"].encode(), int(env["SW_PORT"]), None, 0):
    print("connect", lib.mysql_error(m).decode(errors="replace"))
    sys.exit(1)
for q in sys.argv[1:]:
    st = lib.mysql_stmt_init(m)
    b = q.encode()
    if lib.mariadb_stmt_execute_direct(st, b, len(b)) != 0:
        print("err", lib.mysql_stmt_errno(st), lib.mysql_stmt_error(st).decode(errors="replace"))
    else:
        print("ok", lib.mysql_stmt_affected_rows(st))
    lib.mysql_stmt_close(st)
lib.mysql_close(m)
