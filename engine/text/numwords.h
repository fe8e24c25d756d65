/* engine/text/numwords.h — inflect's number_to_words for a run of digits. */
#ifndef CV_ENGINE_NUMWORDS_H
#define CV_ENGINE_NUMWORDS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/text/utext.h"

/* Appends inflect.engine().number_to_words(s) (inflect 7.6.0, default
 * arguments) for s = d[0..n), a run of characters that Python's str.isdigit()
 * accepts (as CosyVoice's spell_out_number passes them). CV_EINVAL when
 * inflect would raise NumOutOfRangeError (a non-zero digit group past the
 * decillions, i.e. more than 36 significant digits); CV_ENOMEM. */
int numwords_append(const uint32_t *d, size_t n, struct utext *out);

#endif
