/*
 * `revovoice answer` and `revovoice call`: answer inbound SIP calls, or place one outbound call,
 * from the terminal with a play-and-record flow.
 */
#ifndef RV_SIP_CLI_H
#define RV_SIP_CLI_H

/*
 * Run `answer --sip HOST:PORT --play FILE.wav [--record-dir DIR] [--calls N] [--ring-ms MS]
 * [--rtp-ports LO-HI] [--keep-open] [--max-seconds S] [--max-calls N] [--quiet]`. argv[0] is
 * the first option (the command name is not included).
 * Answers calls, plays the prompt, records both directions and hangs up when the prompt has
 * played; exits after N calls (default 1) or on SIGINT/SIGTERM. Prints one line per call
 * event on stdout (--quiet: only "listening" and the per-call "hangup" line, which carries the
 * RTP counters, loss, RFC 3550 jitter and talk time). --max-calls sets how many calls may run
 * at once (default 100; more get 486). Returns the process exit code: 0 on success, 1 on
 * failure, 2 on bad usage.
 */
int rv_sip_cli_answer(int argc, char **argv);

/*
 * Run `call sip:user@host[:port][;transport=tcp] --play FILE.wav [--record OUT.wav]
 * [--from URI] [--user U --password P] [--timeout S] [--sip HOST:PORT] [--rtp-ports LO-HI]`:
 * place one call, play the prompt once answered, record both sides, hang up when the prompt
 * has played (or when the far end does). Prints one JSON line with the outcome on stdout.
 * Returns the exit code: 0 answered, 1 not answered or failed, 2 bad usage.
 */
int rv_sip_cli_call(int argc, char **argv);

#endif
