/* engine/text/tn_fst.cpp — the wetext grammars run with OpenFst (C++ behind tn.h).
 *
 * DESIGN: the only C++ file of the daemon, kept to what kaldifst's
 * TextNormalizer::Normalize does, so results match the reference bit for
 * bit: the input bytes become a linear acceptor (labels are the unsigned
 * byte values), it is composed with the grammar (read once, converted to a
 * ConstFst like kaldifst's CastOrConvertToConstFst), the single shortest
 * path is taken and its output labels, printed as bytes, are the result.
 * OpenFst reports errors by logging and flagging kError; fst_error_fatal is
 * switched off so a bad input never aborts the daemon. No C++ exception
 * leaves this file.
 */
#include "engine/text/tn.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include <fst/fstlib.h>

extern "C" {
#include "common/err.h"
}

namespace
{

constexpr uint64_t kStringProps = fst::kAcceptor | fst::kIDeterministic | fst::kODeterministic |
				  fst::kILabelSorted | fst::kOLabelSorted | fst::kUnweighted | fst::kAcyclic |
				  fst::kInitialAcyclic | fst::kTopSorted | fst::kAccessible |
				  fst::kCoAccessible | fst::kString | fst::kUnweightedCycles;

const char *const kFiles[2][2] = {{"zh_tn_tagger.fst", "zh_tn_verbalizer.fst"},
				  {"en_tn_tagger.fst", "en_tn_verbalizer.fst"}};

} // namespace

struct tn {
	std::unique_ptr<fst::StdConstFst> g[2][2];
};

extern "C" int tn_open(const char *dir, struct tn **out, char *err, size_t errlen)
{
	*out = nullptr;
	try {
		FLAGS_fst_error_fatal = false;
		auto t = std::make_unique<tn>();
		for (int l = 0; l < 2; l++)
			for (int s = 0; s < 2; s++) {
				std::string path = std::string(dir) + "/" + kFiles[l][s];
				FILE *f = std::fopen(path.c_str(), "rb");
				if (!f) {
					std::snprintf(err, errlen, "%s: cannot open TN grammar",
						      path.c_str());
					return CV_EIO;
				}
				std::fclose(f);
				std::unique_ptr<fst::StdFst> r(fst::StdFst::Read(path));
				if (!r || r->Properties(fst::kError, false)) {
					std::snprintf(err, errlen, "%s: not an OpenFst standard-arc grammar",
						      path.c_str());
					return CV_EINVAL;
				}
				if (r->Type() == "const")
					t->g[l][s].reset(static_cast<fst::StdConstFst *>(r.release()));
				else
					t->g[l][s] = std::make_unique<fst::StdConstFst>(*r);
			}
		*out = t.release();
		return CV_OK;
	} catch (const std::bad_alloc &) {
		std::snprintf(err, errlen, "out of memory loading TN grammars");
		return CV_ENOMEM;
	} catch (...) {
		std::snprintf(err, errlen, "loading TN grammars failed");
		return CV_EENGINE;
	}
}

extern "C" void tn_free(struct tn *t)
{
	delete t;
}

extern "C" int tn_fst_apply(const struct tn *t, enum tn_lang lang, enum tn_stage stage, const char *in,
			    size_t len, char **out, size_t *out_len, char *err, size_t errlen)
{
	*out = nullptr;
	*out_len = 0;
	try {
		const fst::StdConstFst &rule = *t->g[lang == TN_LANG_EN][stage == TN_STAGE_VERBALIZER];
		fst::StdVectorFst text;
		text.ReserveStates(static_cast<int>(len + 1));
		auto s = text.AddState();
		text.SetStart(s);
		for (size_t i = 0; i < len; i++) {
			const int label = static_cast<unsigned char>(in[i]);
			auto next = text.AddState();
			text.AddArc(s, fst::StdArc(label, label, fst::TropicalWeight::One(), next));
			s = next;
		}
		text.SetFinal(s, fst::TropicalWeight::One());
		text.SetProperties(kStringProps, kStringProps);

		fst::StdVectorFst composed;
		fst::Compose(text, rule, &composed);
		fst::StdVectorFst best;
		fst::ShortestPath(composed, &best, 1);
		if (composed.Properties(fst::kError, false) || best.Properties(fst::kError, false)) {
			std::snprintf(err, errlen, "text normalization failed (OpenFst error)");
			return CV_EENGINE;
		}
		std::string res;
		fst::StringPrinter<fst::StdArc> printer(fst::TokenType::BYTE);
		if (!printer(best, &res))
			res.clear();
		char *o = static_cast<char *>(std::malloc(res.size() + 1));
		if (!o) {
			std::snprintf(err, errlen, "out of memory");
			return CV_ENOMEM;
		}
		std::memcpy(o, res.data(), res.size());
		o[res.size()] = '\0';
		*out = o;
		*out_len = res.size();
		return CV_OK;
	} catch (const std::bad_alloc &) {
		std::snprintf(err, errlen, "out of memory in text normalization");
		return CV_ENOMEM;
	} catch (...) {
		std::snprintf(err, errlen, "text normalization failed");
		return CV_EENGINE;
	}
}
