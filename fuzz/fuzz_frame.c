/*
 * fuzz_frame.c - the peer frame decoder on arbitrary bytes, delivered in
 * arbitrary pieces.
 *
 * Input: one byte choosing how the rest is cut into reads (as a peer's
 * stream may be), then the stream.  Every decoded object must survive a
 * round trip: frame_encode, decode again, and print the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* A small maximum, so that the "too large" path is reached too. */
#define FUZZ_FRAME_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * on_again receives the re-decoded copy and compares it with the original,
 * as printed: cJSON_Compare would call two objects with a duplicated key
 * different, and a peer may well send one.
 */
static int on_again(void *arg, const cJSON *msg)
{
	char **seen = arg;
	char *again = cJSON_PrintUnformatted(msg);
	if (again == NULL)
		abort();
	if (strcmp(*seen, again) != 0)
		abort();
	free(again);
	free(*seen);
	*seen = NULL;
	return 0;
}

/* on_frame re-encodes each decoded object and decodes it once more. */
static int on_frame(void *arg, const cJSON *msg)
{
	size_t *frames = arg;
	char *buf;
	size_t len;
	(*frames)++;
	if (!cJSON_IsObject(msg))
		abort(); /* the decoder promises objects only */
	int rc = frame_encode(msg, &buf, &len);
	if (rc != 0)
		return 0; /* e.g. too large once printed compactly: nothing to compare */
	struct frame_decoder d;
	frame_decoder_init(&d, FRAME_MAX_DEFAULT);
	char *seen = cJSON_PrintUnformatted(msg);
	if (seen == NULL)
		abort();
	rc = frame_decoder_feed(&d, buf, len, on_again, &seen);
	if (rc != 0 || seen != NULL || frame_decoder_partial(&d))
		abort();
	frame_decoder_free(&d);
	free(buf);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t step = (size_t)data[0] + 1; /* read sizes of 1..256 bytes */
	data++;
	size--;

	struct frame_decoder d;
	size_t frames = 0;
	frame_decoder_init(&d, FUZZ_FRAME_MAX);
	int err = 0;
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		int rc = frame_decoder_feed(&d, data + off, n, on_frame, &frames);
		if (err != 0 && rc != err)
			abort(); /* errors are sticky */
		err = rc;
	}
	frame_decoder_free(&d);
	return 0;
}
