/*
 * `revovoice answer`: answer inbound SIP calls from the terminal with a play-and-record flow.
 */
#ifndef RV_SIP_CLI_H
#define RV_SIP_CLI_H

/*
 * Run `answer --sip HOST:PORT --play FILE.wav [--record-dir DIR] [--calls N] [--ring-ms MS]
 * [--rtp-ports LO-HI]`. argv[0] is the first option (the command name is not included).
 * Answers calls, plays the prompt, records both directions and hangs up when the prompt has
 * played; exits after N calls (default 1) or on SIGINT/SIGTERM. Prints one line per call
 * event on stdout. Returns the process exit code: 0 on success, 1 on failure, 2 on bad usage.
 */
int rv_sip_cli_answer(int argc, char **argv);

#endif
