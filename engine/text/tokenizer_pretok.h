/* engine/text/tokenizer_pretok.h — internal pieces of the tokenizer (not an API
 * for other modules): UTF-8 helpers, NFC, and the Qwen2 pre-tokenizer scanner.
 * Everything here takes *valid* UTF-8 (checked by utf8_validate(), common/utf8.h). */
#ifndef CV_ENGINE_TOKENIZER_PRETOK_H
#define CV_ENGINE_TOKENIZER_PRETOK_H

#include <stddef.h>
#include <stdint.h>

/* Character classes of the pre-tokenizer regex. */
enum tok_class {
	TOK_CLASS_L,  /* \p{L}: general category Lu Ll Lt Lm Lo */
	TOK_CLASS_N,  /* \p{N}: Nd Nl No */
	TOK_CLASS_NL, /* \r or \n (also \s) */
	TOK_CLASS_S,  /* other \s (Unicode White_Space, as Oniguruma's \s) */
	TOK_CLASS_O   /* everything else: [^\s\p{L}\p{N}] */
};

enum tok_class tokenizer_pretok_class(uint32_t cp);

/* Decodes one code point of valid UTF-8 at s[0..]; *n gets its byte length. */

/* Nonzero when cp alone is known to be NFC-inert: NFC quick-check Yes,
 * combining class 0 and never the second element of a composition. A string
 * made only of such code points is already in NFC. */
int tokenizer_nfc_inert(uint32_t cp);

/* Nonzero for the code points HF's (Unicode 9.0) NFC treats as unknown
 * starters although utf8proc has normalization data for them. */
int tokenizer_nfc_unknown(uint32_t cp);

/* NFC of s[0..len) as HF's normalizer computes it. *out is NULL when s is already NFC (use s itself);
 * otherwise a malloc'd buffer of *out_len bytes the caller frees.
 * Returns 0, CV_ENOMEM or CV_EINVAL (utf8proc refused the text). */
int tokenizer_nfc(const uint8_t *s, size_t len, uint8_t **out, size_t *out_len);

/* End offset of the pre-token that starts at s[pos] (pos < len): the match
 * the Qwen2 regex finds at pos under leftmost-first alternation. */
size_t tokenizer_pretok_next(const uint8_t *s, size_t len, size_t pos);

#endif
