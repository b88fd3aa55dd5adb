#!/usr/bin/python3
"""PyMySQL's ping(reconnect=True) after the backend closed an idle session,
for test/e2e/backend_closed_test.go.

Prints the session's backend thread id, waits for a line on stdin (the test's
word that the backend has closed it), pings with reconnect and prints the
thread id the connection has then.
"""
import os
import sys

import pymysql

conn = pymysql.connect(host=os.environ["SW_HOST"], port=int(os.environ["SW_PORT"]),
                       user=os.environ["SW_USER"], password=os.environ["SW_PASS"])
cur = conn.cursor()
cur.execute("SET SESSION wait_timeout = 1")
cur.execute("SELECT CONNECTION_ID()")
print("id", cur.fetchone()[0], flush=True)
sys.stdin.readline()
conn.ping(reconnect=True)
cur = conn.cursor()
cur.execute("SELECT CONNECTION_ID()")
print("after", cur.fetchone()[0], flush=True)
conn.close()
