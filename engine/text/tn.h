/* engine/text/tn.h — wetext's text normalization (TN) grammars, behind C.
 *
 * The grammars are the compiled OpenFst transducers that the `wetext` PyPI
 * package ships (tagger + verbalizer for zh and for en). tn_fst.cpp runs them
 * with Debian's OpenFst exactly as kaldifst.TextNormalizer does (input string
 * as a byte acceptor, compose, one shortest path, output bytes);
 * tn_reorder.c ports wetext's TokenParser.reorder that sits between the two.
 *
 * Grammar files in the directory (flat, as tools/export/export.py --tn copies them):
 *   zh_tn_tagger.fst zh_tn_verbalizer.fst en_tn_tagger.fst en_tn_verbalizer.fst
 * A loaded struct tn is read-only; any number of threads may use it.
 */
#ifndef CV_ENGINE_TN_H
#define CV_ENGINE_TN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tn_lang { TN_LANG_ZH = 0, TN_LANG_EN = 1 };

enum tn_stage { TN_STAGE_TAGGER = 0, TN_STAGE_VERBALIZER = 1 };

struct tn;

/* CV_EIO when a grammar file is missing or unreadable, CV_EINVAL when it is
 * not a standard-arc OpenFst file. */
int tn_open(const char *dir, struct tn **out, char *err, size_t errlen);
void tn_free(struct tn *t);

/* One kaldifst TextNormalizer pass of a grammar over in[0..len). On success
 * *out is a malloc'd NUL-terminated string (length in *out_len): "" when the
 * grammar has no path for the input (kaldifst's result then). CV_ENOMEM,
 * CV_EENGINE (OpenFst failure). */
int tn_fst_apply(const struct tn *t, enum tn_lang lang, enum tn_stage stage, const char *in, size_t len,
		 char **out, size_t *out_len, char *err, size_t errlen);

/* wetext's TokenParser(lang, "tn").reorder(in): parse the tagger's
 * `name { key: "value" ... }` tokens and print them in the canonical member
 * order. *out is malloc'd. CV_EINVAL for empty input (the reference asserts),
 * CV_ENOMEM. Malformed input never loops (the reference may). */
int tn_reorder(const char *in, size_t len, enum tn_lang lang, char **out, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
