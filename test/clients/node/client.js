// mysql2 through sqlwarden, for test/e2e/clients_test.go. execute() prepares
// server-side (COM_STMT_PREPARE + COM_STMT_EXECUTE); query() is COM_QUERY.
'use strict';
const fs = require('fs');
const mysql = require('mysql2/promise');

const env = process.env;
const tag = env.SW_TAG;
const base = {
  host: env.SW_HOST, port: Number(env.SW_PORT), user: env.SW_USER, password: env.SW_PASS, database: env.SW_DB,
  connectAttributes: { program_name: 'sw-' + tag },
};

async function main() {
  let conn = await mysql.createConnection(base);
  let [rows] = await conn.query(`SELECT name FROM items WHERE id = 1 AND '${tag}' = '${tag}'`);
  console.log('text', rows[0].name);
  [rows] = await conn.execute(`SELECT name, qty FROM items WHERE id = ? AND name = ? AND '${tag}' = '${tag}'`, [2, 'pear']);
  console.log('prepared', rows[0].name, rows[0].qty);
  try {
    await conn.query(`SELECT * FROM no_such_table_${tag}`);
    console.log('error none');
  } catch (e) {
    console.log('error', e.errno);
  }
  await conn.end();

  conn = await mysql.createConnection({ ...base, ssl: { ca: fs.readFileSync(env.SW_CA) } });
  [rows] = await conn.query(`SELECT '${tag}-tls' AS v`);
  console.log('tls', rows[0].v);
  await conn.end();
}

main().catch((e) => { console.error(e); process.exit(1); });
