#include "api/api.h"
#include "twilio/twilio_api.h"

void rv_api_register_all(struct rv_http *http)
{
	rv_http_add_routes(http, rv_api_ops_routes, rv_api_ops_routes_len);
	rv_http_add_routes(http, rv_api_auth_routes, rv_api_auth_routes_len);
	rv_http_add_routes(http, rv_api_resources_routes, rv_api_resources_routes_len);
	rv_http_add_routes(http, rv_api_import_routes, rv_api_import_routes_len);
	rv_http_add_routes(http, rv_api_tel_routes, rv_api_tel_routes_len);
	rv_http_add_routes(http, rv_api_docs_routes, rv_api_docs_routes_len);
	rv_http_add_routes(http, rv_api_twilio_routes, rv_api_twilio_routes_len);
	rv_http_add_routes(http, rv_api_voice_routes, rv_api_voice_routes_len);
	rv_http_add_routes(http, rv_api_train_routes, rv_api_train_routes_len);
	rv_http_add_routes(http, rv_api_speech_routes, rv_api_speech_routes_len);
}
