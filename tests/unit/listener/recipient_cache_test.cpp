#include <catch2/catch.hpp>

#include "recipient_cache.h"

using namespace wsmtp::listener;
using namespace std::chrono_literals;

TEST_CASE("known recipients are remembered for the configured time only", "[recipient_cache]") {
  RecipientCache cache(10s);
  RecipientCache::Clock::time_point t0{};
  CHECK_FALSE(cache.known("alice@example.org", t0));
  cache.remember_known("alice@example.org", t0);
  CHECK(cache.known("alice@example.org", t0 + 9s));
  CHECK_FALSE(cache.known("alice@example.org", t0 + 10s));
  CHECK_FALSE(cache.known("bob@example.org", t0 + 1s));
  cache.remember_known("alice@example.org", t0 + 10s);
  CHECK(cache.known("alice@example.org", t0 + 15s));
}

TEST_CASE("a zero time disables the cache, and a reload forgets old answers", "[recipient_cache]") {
  RecipientCache off(0s);
  off.remember_known("alice@example.org", {});
  CHECK_FALSE(off.known("alice@example.org", {}));

  RecipientCache cache(60s);
  cache.remember_known("alice@example.org", {});
  cache.set_ttl(1s);
  CHECK_FALSE(cache.known("alice@example.org", {}));
}

TEST_CASE("the cache stays bounded under a flood of distinct addresses", "[recipient_cache]") {
  RecipientCache cache(60s);
  RecipientCache::Clock::time_point t0{};
  for (std::size_t i = 0; i < RecipientCache::kMaxEntries + 10; ++i)
    cache.remember_known("u" + std::to_string(i) + "@example.org", t0);
  CHECK(cache.size() <= RecipientCache::kMaxEntries);
  // Expired entries are the first to go.
  RecipientCache aging(1s);
  for (std::size_t i = 0; i < RecipientCache::kMaxEntries; ++i)
    aging.remember_known("old" + std::to_string(i) + "@example.org", t0);
  aging.remember_known("new@example.org", t0 + 2s);
  CHECK(aging.size() == 1);
  CHECK(aging.known("new@example.org", t0 + 2s));
}
