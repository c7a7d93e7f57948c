// Round-trips the RPC envelope through the wire format, which proves that the
// offline proto toolchain (Debian's protoc + libprotobuf) is wired up.
#include <string>

#include "gtest/gtest.h"
#include "proto/rpc_envelope.pb.h"

namespace evactor::rpc {
namespace {

TEST(RpcEnvelopeTest, RequestRoundTripsThroughWireFormat) {
  Request in;
  in.set_call_id(0xfedcba9876543210ull);
  in.set_method("evactor.kv.Store/Get");
  in.set_deadline_us(-1);  // negative values must survive as well
  in.set_payload(std::string("a\0b\xff", 4));

  std::string wire;
  ASSERT_TRUE(in.SerializeToString(&wire));
  ASSERT_FALSE(wire.empty());

  Request out;
  ASSERT_TRUE(out.ParseFromString(wire));
  EXPECT_EQ(out.call_id(), 0xfedcba9876543210ull);
  EXPECT_EQ(out.method(), "evactor.kv.Store/Get");
  EXPECT_EQ(out.deadline_us(), -1);
  EXPECT_EQ(out.payload(), std::string("a\0b\xff", 4));
}

TEST(RpcEnvelopeTest, ResponseCarriesStatus) {
  Response in;
  in.set_call_id(7);
  in.mutable_status()->set_code(5);  // NOT_FOUND
  in.mutable_status()->set_message("no such key");

  Response out;
  ASSERT_TRUE(out.ParseFromString(in.SerializeAsString()));
  EXPECT_EQ(out.call_id(), 7u);
  EXPECT_TRUE(out.has_status());
  EXPECT_EQ(out.status().code(), 5);
  EXPECT_EQ(out.status().message(), "no such key");
  EXPECT_TRUE(out.payload().empty());
}

TEST(RpcEnvelopeTest, TruncatedInputIsRejected) {
  Request in;
  in.set_method("x.Y/Z");
  in.set_payload(std::string(100, 'p'));
  std::string wire = in.SerializeAsString();
  Request out;
  EXPECT_FALSE(out.ParseFromString(wire.substr(0, wire.size() - 10)));
}

}  // namespace
}  // namespace evactor::rpc
