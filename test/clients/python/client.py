#!/usr/bin/python3
"""PyMySQL and mysqlclient (MySQLdb) through sqlwarden, for test/e2e/clients_test.go.

Usage: client.py pymysql|mysqldb. Connection details come from SW_* variables;
the script prints one line per step, which the Go test checks along with the
audit journal. Neither library prepares server-side: parameters are
interpolated by the client into a COM_QUERY.
"""
import os
import ssl
import sys

lib = sys.argv[1]
host, port = os.environ["SW_HOST"], int(os.environ["SW_PORT"])
user, password, db, tag = os.environ["SW_USER"], os.environ["SW_PASS"], os.environ["SW_DB"], os.environ["SW_TAG"]
ca = os.environ["SW_CA"]

if lib == "pymysql":
    import pymysql as driver

    def connect(tls):
        kw = dict(host=host, port=port, user=user, password=password, database=db, program_name="sw-" + tag)
        if tls:
            ctx = ssl.create_default_context(cafile=ca)
            kw["ssl"] = ctx
        return driver.connect(**kw)
else:
    import MySQLdb as driver

    def connect(tls):
        kw = dict(host=host, port=port, user=user, password=password, database=db)
        if tls:
            kw["ssl"] = {"ca": ca}
        return driver.connect(**kw)

conn = connect(False)
cur = conn.cursor()
cur.execute("SELECT name FROM items WHERE id = 1 AND '%s' = '%s'" % (tag, tag))
print("text", cur.fetchone()[0])
cur.execute("SELECT name, qty FROM items WHERE id = %s AND name = %s AND '" + tag + "' = '" + tag + "'", (2, "pear"))
row = cur.fetchone()
print("prepared", row[0], row[1])
try:
    cur.execute("SELECT * FROM no_such_table_" + tag)
    print("error none")
except driver.Error as e:
    print("error", e.args[0])
conn.close()

conn = connect(True)
cur = conn.cursor()
cur.execute("SELECT '%s-tls'" % tag)
print("tls", cur.fetchone()[0])
conn.close()
