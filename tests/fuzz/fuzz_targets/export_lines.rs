//! One line of a signed export (`audit::export::Line::decode`), and what the verifier decodes
//! inside it: an event's `data` (`audit::codec::decode_data`, with the scales of the fixed
//! ledger), an event's hash, a checkpoint line's signed note, an opening's Merkle frontier.
//!
//! Properties: nothing panics; an accepted line is its own canonical encoding and decodes back
//! to the same `Line`; decoded event data re-encodes to data that decodes to the same event; an
//! accepted timestamp formats back to its own text.
//!
//! Input: the line's bytes, without its `\n`.
#![no_main]

use ledger::audit::checkpoint::{open_checkpoint, Checkpoint};
use ledger::audit::codec::{decode_data, encode_data};
use ledger::audit::export::Line;
use ledger::audit::time::{format_timestamp, parse_timestamp};
use ledger_fuzz::{note_verifier, scale_of, ORIGIN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(at) = parse_timestamp(text) {
            assert_eq!(format_timestamp(at), text);
        }
    }
    let Ok(line) = Line::decode(data) else {
        return;
    };
    let bytes = line.encode();
    assert_eq!(
        bytes, data,
        "an accepted line is not its own canonical form"
    );
    assert_eq!(
        Line::decode(&bytes).as_ref(),
        Ok(&line),
        "a line does not decode back"
    );
    match &line {
        Line::Event(event) => {
            let _ = event.computed_hash();
            let _ = event.canonical_body();
            if let Ok(decoded) = decode_data(&event.event_type, &event.data, &scale_of) {
                let encoded = encode_data(&decoded);
                let again = decode_data(&event.event_type, &encoded, &scale_of);
                assert_eq!(
                    again.as_ref(),
                    Ok(&decoded),
                    "event data does not round-trip"
                );
            }
        }
        Line::Checkpoint { note, .. } => {
            let _ = open_checkpoint(note, ORIGIN, &[note_verifier()]);
            // The note's text, above its signature block, as a checkpoint body.
            let text = note
                .rfind("\n\n")
                .map_or(note.as_str(), |end| &note[..end + 1]);
            if let Ok(checkpoint) = Checkpoint::from_note_text(text) {
                let _ = checkpoint.signed_at();
                assert_eq!(checkpoint.to_note_text().as_deref(), Ok(text));
            }
        }
        Line::Opening(opening) => {
            let _ = opening.merkle.root();
            let _ = opening.merkle.subtree_ids();
        }
        _ => {}
    }
});
