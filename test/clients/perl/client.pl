#!/usr/bin/perl
# DBD::MariaDB through sqlwarden, for test/e2e/clients_test.go, with
# server-side prepares (mariadb_server_prepare=1).
use strict;
use warnings;
use DBI;

my ($host, $port, $db, $user, $pass, $tag, $ca) = @ENV{qw(SW_HOST SW_PORT SW_DB SW_USER SW_PASS SW_TAG SW_CA)};
my $dsn = "DBI:MariaDB:database=$db;host=$host;port=$port;mariadb_server_prepare=1";

my $dbh = DBI->connect($dsn, $user, $pass, { RaiseError => 1, PrintError => 0 }) or die $DBI::errstr;
my ($name) = $dbh->selectrow_array("SELECT name FROM items WHERE id = 1 AND '$tag' = '$tag'");
print "text $name\n";
my $sth = $dbh->prepare("SELECT name, qty FROM items WHERE id = ? AND name = ? AND '$tag' = '$tag'");
$sth->execute(2, 'pear');
my @row = $sth->fetchrow_array;
$sth->finish;
print "prepared $row[0] $row[1]\n";
eval { $dbh->do("SELECT * FROM no_such_table_$tag"); print "error none\n"; 1 } or print "error " . $dbh->err . "\n";
$dbh->disconnect;

$dbh = DBI->connect("$dsn;mariadb_ssl=1;mariadb_ssl_ca_file=$ca;mariadb_ssl_verify_server_cert=1", $user, $pass,
  { RaiseError => 1, PrintError => 0 }) or die $DBI::errstr;
my ($v) = $dbh->selectrow_array("SELECT '$tag-tls'");
print "tls $v\n";
$dbh->disconnect;
