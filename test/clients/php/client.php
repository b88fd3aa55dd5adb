<?php
// PHP mysqli and PDO through sqlwarden, for test/e2e/clients_test.go.
// mysqli's prepare() and PDO with ATTR_EMULATE_PREPARES=false both prepare
// server-side (COM_STMT_PREPARE + COM_STMT_EXECUTE).
// Usage: php client.php mysqli|pdo
$lib = $argv[1];
$host = getenv('SW_HOST'); $port = (int)getenv('SW_PORT'); $db = getenv('SW_DB');
$user = getenv('SW_USER'); $pass = getenv('SW_PASS'); $tag = getenv('SW_TAG'); $ca = getenv('SW_CA');
$text = "SELECT name FROM items WHERE id = 1 AND '$tag' = '$tag'";
$prep = "SELECT name, qty FROM items WHERE id = ? AND name = ? AND '$tag' = '$tag'";

if ($lib === 'mysqli') {
    mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
    $c = new mysqli($host, $user, $pass, $db, $port);
    echo "text ", $c->query($text)->fetch_row()[0], "\n";
    $st = $c->prepare($prep);
    $id = 2; $name = 'pear';
    $st->bind_param('is', $id, $name);
    $st->execute();
    $row = $st->get_result()->fetch_row();
    echo "prepared {$row[0]} {$row[1]}\n";
    $st->close();
    try { $c->query("SELECT * FROM no_such_table_$tag"); echo "error none\n"; }
    catch (mysqli_sql_exception $e) { echo "error ", $e->getCode(), "\n"; }
    $c->close();

    $c = mysqli_init();
    $c->ssl_set(null, null, $ca, null, null);
    $c->real_connect($host, $user, $pass, $db, $port, null, MYSQLI_CLIENT_SSL);
    echo "tls ", $c->query("SELECT '$tag-tls'")->fetch_row()[0], "\n";
    $c->close();
} else {
    $dsn = "mysql:host=$host;port=$port;dbname=$db";
    $opts = [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_EMULATE_PREPARES => false];
    $c = new PDO($dsn, $user, $pass, $opts);
    echo "text ", $c->query($text)->fetchColumn(), "\n";
    $st = $c->prepare($prep);
    $st->execute([2, 'pear']);
    $row = $st->fetch(PDO::FETCH_NUM);
    echo "prepared {$row[0]} {$row[1]}\n";
    $st = null;
    try { $c->query("SELECT * FROM no_such_table_$tag"); echo "error none\n"; }
    catch (PDOException $e) { echo "error ", $e->errorInfo[1], "\n"; }
    $c = null;

    $c = new PDO($dsn, $user, $pass, $opts + [PDO::MYSQL_ATTR_SSL_CA => $ca, PDO::MYSQL_ATTR_SSL_VERIFY_SERVER_CERT => true]);
    echo "tls ", $c->query("SELECT '$tag-tls'")->fetchColumn(), "\n";
    $c = null;
}
