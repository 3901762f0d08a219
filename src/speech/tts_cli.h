/* `revovoice say`: synthesize text into a WAV file from the terminal. */
#ifndef RV_TTS_CLI_H
#define RV_TTS_CLI_H

/*
 * Run `say TEXT --voice V [--engine flite|espeak|elevenlabs] [--rate R] [--pitch P] -o OUT.wav
 * [--base-url URL] [--model M] [--cache-dir DIR]`. argv[0] is the first argument after the
 * command name. TEXT "-" reads the text from stdin. Writes a 16 kHz mono 16-bit WAV as the
 * audio streams in and prints one JSON line with what happened on stdout. ElevenLabs takes its
 * key from ELEVENLABS_API_KEY (and ELEVENLABS_BASE_URL, ELEVENLABS_MODEL_ID when the flags are
 * absent). Returns the exit code: 0 written, 1 synthesis or file failure (the reason on
 * stderr; no partial file is left), 2 bad usage.
 */
int rv_tts_cli_say(int argc, char **argv);

#endif
