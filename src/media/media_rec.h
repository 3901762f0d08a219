/*
 * Call recording: a stereo 16-bit WAV, caller on the left channel and agent on the right, at
 * the pipeline rate. The media loop only copies samples into memory; a writer thread per
 * recording opens, writes and closes the file, so disk latency never reaches the loop.
 */
#ifndef RV_MEDIA_REC_H
#define RV_MEDIA_REC_H

#include <stddef.h>
#include <stdint.h>

struct rv_rec;

/*
 * Start a recording to `path` (copied) at `rate` Hz. The file is created by the writer
 * thread; if that fails, the reason is logged (component "media"), the metric
 * rv_media_recording_errors_total counts it and the samples are discarded. Returns 0 and sets
 * *out, or -ENOMEM / -EAGAIN (no thread). The recording is owned by the caller until
 * rv_rec_close().
 */
int rv_rec_open(const char *path, uint32_t rate, struct rv_rec **out);

/*
 * Append n sample pairs; left or right may be NULL for silence. Never blocks on I/O. At most
 * 10 minutes of audio may wait for the writer; beyond that samples are dropped and counted.
 */
void rv_rec_write(struct rv_rec *rec, const int16_t *left, const int16_t *right, size_t n);

/*
 * Finish the recording: the writer writes what is left, closes the file and frees `rec`
 * (consumed; do not use it afterwards). Returns at once.
 */
void rv_rec_close(struct rv_rec *rec);

/*
 * Wait until every recording of this process has been closed and written, up to timeout_ms.
 * For shutdown and tests, never on the media loop. Returns 0, or -ETIMEDOUT.
 */
int rv_rec_wait_idle(uint32_t timeout_ms);

#endif
