// The WebRTC VAD for the VAD bench only, through the C++ audio-processing module of Debian's
// libwebrtc-audio-processing (0.3): VoiceDetection on 10 ms frames, two per 20 ms frame.
// A C face so vad_eval.c stays C.
#include <cstdint>
#include <cstring>
#include <webrtc/modules/audio_processing/include/audio_processing.h>
#include <webrtc/modules/interface/module_common_types.h>

#include "vad_webrtc.h"

struct bench_wrtc {
	webrtc::AudioProcessing *apm;
	webrtc::AudioFrame frame;
};

extern "C" struct bench_wrtc *bench_wrtc_new(int likelihood)
{
	auto *w = new bench_wrtc();
	w->apm = webrtc::AudioProcessing::Create();
	if (!w->apm) {
		delete w;
		return nullptr;
	}
	w->apm->Initialize(16000, 16000, 16000, webrtc::AudioProcessing::kMono,
	                   webrtc::AudioProcessing::kMono, webrtc::AudioProcessing::kMono);
	webrtc::VoiceDetection *vd = w->apm->voice_detection();
	vd->Enable(true);
	vd->set_frame_size_ms(10);
	static const webrtc::VoiceDetection::Likelihood map[] = {
	    webrtc::VoiceDetection::kHighLikelihood, webrtc::VoiceDetection::kModerateLikelihood,
	    webrtc::VoiceDetection::kLowLikelihood, webrtc::VoiceDetection::kVeryLowLikelihood};
	vd->set_likelihood(map[likelihood < 0 ? 0 : likelihood > 3 ? 3 : likelihood]);
	return w;
}

// 320 samples at 16 kHz; 1 when either 10 ms half has voice.
extern "C" int bench_wrtc_frame(struct bench_wrtc *w, const int16_t *pcm)
{
	int voice = 0;
	for (int h = 0; h < 2; h++) {
		w->frame.sample_rate_hz_ = 16000;
		w->frame.num_channels_ = 1;
		w->frame.samples_per_channel_ = 160;
		std::memcpy(w->frame.data_, pcm + 160 * h, 160 * sizeof(int16_t));
		if (w->apm->ProcessStream(&w->frame) != 0)
			return -1;
		voice |= w->apm->voice_detection()->stream_has_voice() ? 1 : 0;
	}
	return voice;
}

extern "C" void bench_wrtc_free(struct bench_wrtc *w)
{
	if (!w)
		return;
	delete w->apm;
	delete w;
}
