/*
 * Twilio's webhooks on the control-plane HTTP server: POST /twilio/voice (TwiML that connects
 * the call to our Media Streams socket) and POST /twilio/status (call progress for calls we
 * placed). Both are public routes authenticated by X-Twilio-Signature (twilio.validate_signature).
 * Separate from twilio.h because it pulls in the HTTP layer (and with it jansson).
 */
#ifndef RV_TWILIO_API_H
#define RV_TWILIO_API_H

#include <stddef.h>

#include "api/http.h"

extern const struct rv_route rv_api_twilio_routes[];
extern const size_t rv_api_twilio_routes_len;

#endif
