// Test support: the bank sample domain (domain-samples/bank).
#pragma once

#include <bank/account.hpp>
