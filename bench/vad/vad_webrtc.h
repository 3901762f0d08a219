/* C face of the WebRTC VAD used by the VAD bench (vad_webrtc.cc). */
#ifndef BENCH_VAD_WEBRTC_H
#define BENCH_VAD_WEBRTC_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
struct bench_wrtc;
/* likelihood 0..3: 3 is "very low likelihood", the aggressive mode (WebRTC mode 3). */
struct bench_wrtc *bench_wrtc_new(int likelihood);
int bench_wrtc_frame(struct bench_wrtc *w, const int16_t *pcm);
void bench_wrtc_free(struct bench_wrtc *w);
#ifdef __cplusplus
}
#endif
#endif
