//! Mints a Connect CA and leafs for the benchmark:
//! `cargo run --features mint --bin dataplane-mint-certs -- <dir> <svc>...`.
//!
//! Writes `<dir>/ca.pem` (roots), `<dir>/<svc>.crt` and `<dir>/<svc>.key` for each service, plus
//! `<dir>/<svc>.pem` (certificate then key, the form HAProxy's `crt` takes) and `<dir>/trust-domain`.
//! Files holding keys are created 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: mint-certs <dir> <service>..."))?;
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let mut ca = connect_ca::Ca::generate(
        "5fcd4b81-a2ca-405a-ac62-0fac602c1949",
        connect_ca::CaConfig::new("dc1"),
        1,
    )?;
    write(&dir.join("ca.pem"), &ca.roots().pem_bundle(), 0o644)?;
    write(&dir.join("trust-domain"), ca.trust_domain().as_str(), 0o644)?;
    for service in args {
        let id = connect::SpiffeId::Service(ca.service_id(&service)?);
        let leaf = ca.issue_leaf(&id)?;
        let key = leaf.private_key_pem.expose();
        write(&dir.join(format!("{service}.crt")), &leaf.cert_pem, 0o644)?;
        write(&dir.join(format!("{service}.key")), key, 0o600)?;
        write(
            &dir.join(format!("{service}.pem")),
            &format!("{}{}", leaf.cert_pem, key),
            0o600,
        )?;
    }
    Ok(())
}
