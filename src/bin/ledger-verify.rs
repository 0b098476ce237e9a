//! `ledger-verify`: checks a signed export offline (placeholder until the verifier lands).

fn main() {
    eprintln!("ledger-verify: not yet implemented");
    std::process::exit(2);
}
