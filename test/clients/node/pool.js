// A mysql2 pool through sqlwarden whose backend closes the idle connection,
// for test/e2e/backend_closed_test.go. It prints the pooled connection's
// backend thread id, waits for a line on stdin (the test's word that the
// backend has closed it), then queries through the pool again: the pool
// must have dropped the closed connection and open a fresh one.
'use strict';
const mysql = require('mysql2/promise');
const readline = require('readline');

const env = process.env;
async function main() {
  const pool = mysql.createPool({
    host: env.SW_HOST, port: Number(env.SW_PORT), user: env.SW_USER, password: env.SW_PASS,
    connectionLimit: 1,
  });
  let [rows] = await pool.query('SELECT CONNECTION_ID() AS id');
  await pool.query('SET SESSION wait_timeout = 1');
  console.log('id', rows[0].id);
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once('line', resolve));
  rl.close();
  [rows] = await pool.query('SELECT CONNECTION_ID() AS id');
  console.log('after', rows[0].id);
  await pool.end();
}

main().catch((e) => { console.error(e); process.exit(1); });
