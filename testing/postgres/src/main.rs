//! `nproxy-test-postgres stop`: stops the test server of this checkout (scripts/test.sh,
//! when the suite ends); `url`: prints a new database's URL (for poking at it by hand).

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("stop") => nproxy_test_postgres::stop(),
        Some("url") => println!("{}", nproxy_test_postgres::database_url()),
        _ => {
            eprintln!("usage: nproxy-test-postgres stop|url");
            std::process::exit(2);
        }
    }
}
