//! The load comparison's helper: makes a key set and tokens for it.
//!
//! ```text
//! mint DIR N
//! ```
//! writes `DIR/keyset.json` (an ES256 set, as `minigate keys init` makes),
//! `DIR/es256.pem` (the current public key, for HAProxy's `jwt_verify`) and
//! `DIR/tokens.txt` (N distinct access tokens, one per line, valid 2 hours).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: mint DIR N");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let set = minigate_benches::key_set(jwks::Alg::ES256);
    if let Err(e) = set.save(&dir) {
        eprintln!("mint: {e}");
        return ExitCode::FAILURE;
    }
    let Some(pem) = minigate_benches::es256_public_pem(set.current()) else {
        eprintln!("mint: no EC public key");
        return ExitCode::FAILURE;
    };
    let written = std::fs::write(dir.join("es256.pem"), pem).and_then(|()| {
        let file = std::fs::File::create(dir.join("tokens.txt"))?;
        let mut out = std::io::BufWriter::new(file);
        for i in 0..n {
            writeln!(out, "{}", minigate_benches::access_token(&set, i, 7200))?;
        }
        out.flush()
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mint: {e}");
            ExitCode::FAILURE
        }
    }
}
