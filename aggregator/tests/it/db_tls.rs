//! Issue 19 §4: the aggregator connects to PostgreSQL over TLS with
//! `sslmode=verify-full` (the Terraform module's URL): the server's
//! certificate must chain to `sslrootcert` and name the host. Uses the test
//! server's own certificate (Debian's PostgreSQL serves TLS with the
//! self-signed "snakeoil" certificate for `localhost`).

use canopy_aggregator::db;

const SERVER_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn url(host: &str, params: &str) -> String {
    format!("postgres://postgres@{host}:5432/postgres?{params}")
}

#[tokio::test]
async fn verify_full_connects_only_to_a_server_whose_certificate_chains_and_names_the_host() {
    assert!(std::path::Path::new(SERVER_CERT).exists(), "the test server's certificate {SERVER_CERT} is missing");

    // The right CA and the name in the certificate: a TLS session.
    let pool = db::connect(&url("localhost", &format!("sslmode=verify-full&sslrootcert={SERVER_CERT}")), 1)
        .await
        .expect("verify-full to localhost with the server's CA");
    let ssl: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&pool).await.unwrap();
    assert!(ssl, "the session is encrypted");
    pool.close().await;

    // The same server reached by an address its certificate does not name.
    let err = db::connect(&url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={SERVER_CERT}")), 1)
        .await
        .expect_err("127.0.0.1 is not in the certificate");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");

    // Without the CA that signed it (only the public web roots).
    let err = db::connect(&url("localhost", "sslmode=verify-full"), 1).await.expect_err("unknown issuer");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}
