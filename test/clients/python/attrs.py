#!/usr/bin/python3
"""PyMySQL's connection attributes as the server sees them, for test/e2e/attrs_test.go.

Usage: attrs.py HOST PORT USER PASSWORD. Prints one JSON object: this
process's pid and the attributes performance_schema holds for the session.
"""
import json
import os
import sys

import pymysql

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
conn = pymysql.connect(host=host, port=port, user=user, password=password, program_name="sw-attrs")
cur = conn.cursor()
cur.execute("SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs "
            "WHERE PROCESSLIST_ID = CONNECTION_ID()")
print(json.dumps({"pid": os.getpid(), "attrs": dict(cur.fetchall())}))
conn.close()
