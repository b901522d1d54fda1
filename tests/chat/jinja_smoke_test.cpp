#include <gtest/gtest.h>
#include "text/chat/jinja_template.h"
using namespace moeflux::jinja;
TEST(JinjaSmoke, Hello) {
  auto t = Template::parse("Hello {{ name }}!");
  nlohmann::ordered_json ctx = {{"name", "world"}};
  EXPECT_EQ(t.render(ctx), "Hello world!");
}
