//! Extractive summarizer: TextRank over the sentences of the chunks, each sentence's rank
//! weighted by its chunk's importance; the best sentences that fit `max-length` are returned in
//! their original order. Tokens are estimated as one per four characters (rounded up).

mod textrank;

use exports::claudenest::plugin::summarize::{Chunk, Guest, Options, Summary};

wit_bindgen::generate!({ path: "../../wit", world: "summarizer" });

#[unsafe(link_section = "claudenest:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

struct TextRank;

impl Guest for TextRank {
    fn summarize(chunks: Vec<Chunk>, options: Options) -> Result<Summary, String> {
        if options.max_length == 0 {
            return Err("max-length must be positive".into());
        }
        let inputs: Vec<textrank::Input> = chunks
            .iter()
            .map(|c| textrank::Input {
                content: &c.content,
                importance: c.importance,
            })
            .collect();
        let (text, used) = textrank::summarize(&inputs, options.max_length as usize);
        let token_estimate = text.chars().count().div_ceil(4) as u32;
        Ok(Summary {
            text,
            used,
            token_estimate,
        })
    }
}

export!(TextRank);
