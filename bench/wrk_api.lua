-- wrk script for bench/api_bench.sh. Environment:
--   RV_API_KEY       sent as X-API-Key on every request
--   RV_BENCH_MODE    "read" (GET the URL as given) or "write" (POST /api/leads bodies)
--   RV_CAMPAIGN_ID   campaign the written leads belong to
-- Writes use a phone number that no other request of the run uses: each wrk thread owns an
-- area code and counts through its exchange and line numbers, so no POST fails as a duplicate.

local thread_count = 0
local areas = { "202", "212", "312", "415", "617", "718", "646", "305",
                "213", "303", "404", "503", "602", "713", "206", "512" }

function setup(thread)
	thread_count = thread_count + 1
	thread:set("thread_index", thread_count)
end

function init(args)
	mode = os.getenv("RV_BENCH_MODE") or "read"
	campaign = os.getenv("RV_CAMPAIGN_ID") or "1"
	area = areas[((thread_index or 1) - 1) % #areas + 1]
	counter = 0
	wrk.headers["X-API-Key"] = os.getenv("RV_API_KEY") or ""
	if mode == "write" then
		wrk.method = "POST"
		wrk.headers["Content-Type"] = "application/json"
	end
end

function request()
	if mode ~= "write" then
		return wrk.format()
	end
	counter = counter + 1
	-- NANP: the exchange must start with 2-9, so count exchanges 200..999.
	local exchange = 200 + math.floor(counter / 10000) % 800
	local line = counter % 10000
	local body = string.format(
		'{"campaign_id":%s,"phone":"+1%s%03d%04d","first_name":"Bench","last_name":"Lead"}',
		campaign, area, exchange, line)
	return wrk.format("POST", "/api/leads", nil, body)
end
