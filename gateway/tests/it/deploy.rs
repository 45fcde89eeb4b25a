//! What `deploy/` ships: its configs are valid minigate configs, and the
//! rotation CronJob's steps work on a Secret-volume-like directory. (The
//! manifests themselves are rendered and schema-validated by `.ci/run`.)

use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use minigate::config::{AuthMode, Config};

fn deploy(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    std::fs::read_to_string(root.join(path)).unwrap()
}

fn env(name: &str) -> Option<String> {
    (name == "WECHAT_APP_SECRET").then(|| "s".to_owned())
}

#[test]
fn shipped_configs_are_valid() {
    let edge = Config::from_toml(&deploy("base/minigate.toml"), &env).unwrap();
    assert_eq!(edge.keys.dir, Path::new("/etc/minigate/keys"));
    assert_eq!(edge.listen.port(), 8080);
    let sidecar = Config::from_toml(&deploy("overlays/sidecar/minigate.toml"), &env).unwrap();
    assert!(sidecar
        .routes
        .iter()
        .all(|r| r.upstream.host() == Some("127.0.0.1")));
    assert!(sidecar
        .routes
        .iter()
        .any(|r| r.prefix == "/" && r.auth == AuthMode::Required));
    // The Deployment mounts the config and keys where the config says.
    let deployment = deploy("base/deployment.yaml");
    assert!(deployment.contains("mountPath: /etc/minigate/keys"));
    assert!(deployment.contains("/etc/minigate/minigate.toml"));
}

#[test]
fn the_tls_edge_config_is_valid_with_a_certificate_where_the_secret_mounts() {
    // The Secret's files, made here and put where the overlay mounts them.
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["auth.example.com".into()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
    let text = deploy("overlays/edge-tls/minigate.toml")
        .replace("/etc/minigate/tls", dir.path().to_str().unwrap());
    let config = Config::from_toml(&text, &env).unwrap();
    let tls = config.tls.expect("the edge-tls config has [tls]");
    assert_eq!(tls.cert, dir.path().join("tls.crt"));
    assert_eq!(config.listen.port(), 8443);
    // The overlay mounts the Secret there, serves and probes HTTPS on 8443.
    let overlay = deploy("overlays/edge-tls/kustomization.yaml");
    for says in [
        "mountPath: /etc/minigate/tls",
        "secretName: minigate-tls",
        "containerPort: 8443",
        "scheme: HTTPS",
        "value: 8443",
    ] {
        assert!(overlay.contains(says), "{says}");
    }
}

fn minigate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cronjob_steps_rotate_a_copy_of_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    // A Secret volume: timestamped folder, ..data link, file link, mode 0440.
    let secret = tmp.path().join("secret");
    let set = jwks::KeySet::generate(jwks::Alg::ES256, std::time::SystemTime::now()).unwrap();
    set.save(&secret.join("..2026_11_24")).unwrap();
    let real = secret.join("..2026_11_24/keyset.json");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o440)).unwrap();
    symlink("..2026_11_24", secret.join("..data")).unwrap();
    symlink("..data/keyset.json", secret.join("keyset.json")).unwrap();
    let work = tmp.path().join("work");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/minigate.toml");
    let (s, w, c) = (
        secret.to_str().unwrap(),
        work.to_str().unwrap(),
        config.to_str().unwrap(),
    );

    minigate(&["keys", "copy", "--from", s, "--dir", w]);
    let file = work.join("keyset.json");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    minigate(&["keys", "rotate", "--dir", w]);
    // prune reads only the refresh TTL: no app secret in this Job's env.
    let out = Command::new(env!("CARGO_BIN_EXE_minigate"))
        .args(["keys", "prune", "--dir", w, "--config", c])
        .env_remove("WECHAT_APP_SECRET")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("pruned 0") && text.contains("30days"),
        "{text}"
    );

    let rotated = jwks::KeySet::load(&work).unwrap();
    assert_eq!(rotated.entries().len(), 3);
    assert_eq!(rotated.current().kid(), set.entries()[1].key.kid());
    // The Secret itself was only read.
    assert_eq!(
        jwks::KeySet::load(&secret).unwrap().current().kid(),
        set.current().kid()
    );
}
