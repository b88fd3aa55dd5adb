// MariaDB Connector/J through sqlwarden, for test/e2e/clients_test.go, with
// server-side prepares (useServerPrepStmts=true): PreparedStatement becomes
// COM_STMT_PREPARE + COM_STMT_EXECUTE.
import java.sql.*;

public class Client {
    public static void main(String[] args) throws Exception {
        String host = System.getenv("SW_HOST"), port = System.getenv("SW_PORT"), db = System.getenv("SW_DB");
        String user = System.getenv("SW_USER"), pass = System.getenv("SW_PASS"), tag = System.getenv("SW_TAG");
        String ca = System.getenv("SW_CA");
        String url = "jdbc:mariadb://" + host + ":" + port + "/" + db + "?useServerPrepStmts=true&connectionAttributes=program_name:sw-" + tag;
        try (Connection c = DriverManager.getConnection(url, user, pass)) {
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT name FROM items WHERE id = 1 AND '" + tag + "' = '" + tag + "'")) {
                rs.next();
                System.out.println("text " + rs.getString(1));
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT name, qty FROM items WHERE id = ? AND name = ? AND '" + tag + "' = '" + tag + "'")) {
                ps.setInt(1, 2);
                ps.setString(2, "pear");
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("prepared " + rs.getString(1) + " " + rs.getInt(2));
                }
            }
            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT * FROM no_such_table_" + tag);
                System.out.println("error none");
            } catch (SQLException e) {
                System.out.println("error " + e.getErrorCode());
            }
        }
        String tlsURL = url + "&useSSL=true&serverSslCert=" + ca;
        try (Connection c = DriverManager.getConnection(tlsURL, user, pass);
             Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT '" + tag + "-tls'")) {
            rs.next();
            System.out.println("tls " + rs.getString(1));
        }
    }
}
