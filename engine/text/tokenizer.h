/* engine/text/tokenizer.h — CosyVoice2's text tokenizer: Qwen2 byte-level BPE with
 * the CosyVoice-BlankEN merge list, giving the same ids as Hugging Face
 * `tokenizers` (what `AutoTokenizer.from_pretrained(CosyVoice-BlankEN)` plus
 * CosyVoice2's `add_special_tokens` builds; docs/cosyvoice2.md §2.2, §2.3, §10).
 *
 * Pipeline of tokenizer_encode(), in HF's order:
 *   1. added/special tokens are cut out first, by exact byte match on the raw
 *      text (leftmost, then longest; atomic; not normalized; lstrip/rstrip
 *      honoured when tokenizer_config.json asks for them);
 *   2. every remaining span is NFC-normalized (utf8proc);
 *   3. the span is split with the Qwen2 pre-tokenizer regex
 *        (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
 *         ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *      (a hand-written scanner with the regex's leftmost-first semantics);
 *   4. each piece's UTF-8 bytes go through BPE with merge ranks from
 *      merges.txt (rank = line index), ids from vocab.json. No BOS/EOS.
 *
 * Input: UTF-8 text of explicit length (NUL bytes are ordinary characters).
 * Invalid UTF-8 (bad lead/continuation bytes, overlong forms, surrogates,
 * code points above U+10FFFF, truncated sequences) is refused with CV_EINVAL
 * and the byte offset of the first bad byte in err, because the HTTP layer
 * refuses such bodies too; the tokenizer never guesses a repair.
 *
 * Caps: text longer than the input cap (tokenizer_set_max_input(), default
 * TOKENIZER_DEFAULT_MAX_INPUT bytes) gives CV_E2BIG before any work; more ids
 * than `cap` gives CV_E2BIG (ids[0..cap) then hold a prefix of the result).
 *
 * Threads: after tokenizer_open() (and an optional tokenizer_set_max_input())
 * the object is read-only; any number of threads may encode/decode at once.
 * Errors follow common/err.h. tokenizer_free(NULL) is a no-op.
 */
#ifndef CV_ENGINE_TOKENIZER_H
#define CV_ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct tokenizer;

#define TOKENIZER_DEFAULT_MAX_INPUT ((size_t)8 << 20) /* bytes */

/* Loads <dir>/vocab.json, <dir>/merges.txt and the added tokens of
 * <dir>/special_tokens.json (object: content -> id) and, when present,
 * <dir>/tokenizer_config.json ("added_tokens_decoder"). At least one of the
 * two added-token files must exist. Added tokens that HF would normalize
 * (normalized=true, or no "normalized" on a non-special token) or match as
 * single words are refused (CV_EUNSUPPORTED) rather than silently tokenized
 * differently; BlankEN's are all special, non-normalized. Errors: CV_EIO (missing/unreadable
 * file), CV_EINVAL (malformed content, id clash, merge of unknown tokens). */
int tokenizer_open(const char *dir, struct tokenizer **out, char *err, size_t errlen);
void tokenizer_free(struct tokenizer *t);

/* Sets the input length cap in bytes (0 restores the default). Call before the
 * tokenizer is shared between threads. */
void tokenizer_set_max_input(struct tokenizer *t, size_t max_bytes);

/* Encodes text[0..len) into ids[0..cap); *n_out gets the number of ids written
 * (on CV_E2BIG for the token cap: cap). CV_EINVAL: invalid UTF-8 (offset in err)
 * or NULL text with len > 0; CV_E2BIG: input or token cap; CV_ENOMEM. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int32_t *ids, size_t cap,
		     size_t *n_out, char *err, size_t errlen);

/* Decodes ids into UTF-8 text appended to out, like HF's ByteLevel decoder:
 * bytes of the tokens concatenated, then invalid UTF-8 replaced by U+FFFD
 * (one per maximal invalid subpart, as Rust's from_utf8_lossy). Added tokens
 * decode to their content unless skip_special is nonzero and they are special.
 * CV_EINVAL: an id out of range; CV_E2BIG: out's cap. */
int tokenizer_decode(const struct tokenizer *t, const int32_t *ids, size_t n, int skip_special,
		     struct buf *out, char *err, size_t errlen);

/* Vocabulary size including added tokens (151663 for CosyVoice-BlankEN). */
size_t tokenizer_vocab_size(const struct tokenizer *t);

/* Id of a token given as an added token's content ("<|endoftext|>") or as a
 * vocab.json key (byte-level form, e.g. "Ġhello"); CV_ENOTFOUND if none. */
int tokenizer_token_id(const struct tokenizer *t, const char *token);

#endif
