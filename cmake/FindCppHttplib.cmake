# Finds cpp-httplib (Debian's libcpp-httplib-dev) as the imported target CppHttplib::cpp-httplib.
# Debian ships it split: httplib.h declares, libcpp-httplib.so defines, built with OpenSSL, zlib
# and Brotli support. The same CPPHTTPLIB_* macros must be defined by every user of the header
# (they change its classes' layout); its cpp-httplib.pc says so, and no CMake config ships.
if(NOT TARGET CppHttplib::cpp-httplib)
  find_path(CPPHTTPLIB_INCLUDE_DIR httplib.h)
  find_library(CPPHTTPLIB_LIBRARY NAMES cpp-httplib)
  if(CPPHTTPLIB_INCLUDE_DIR AND CPPHTTPLIB_LIBRARY)
    add_library(CppHttplib::cpp-httplib UNKNOWN IMPORTED)
    set_target_properties(CppHttplib::cpp-httplib PROPERTIES
      IMPORTED_LOCATION "${CPPHTTPLIB_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CPPHTTPLIB_INCLUDE_DIR}"
      INTERFACE_COMPILE_DEFINITIONS
        "CPPHTTPLIB_OPENSSL_SUPPORT;CPPHTTPLIB_ZLIB_SUPPORT;CPPHTTPLIB_BROTLI_SUPPORT")
  endif()
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CppHttplib REQUIRED_VARS CPPHTTPLIB_LIBRARY CPPHTTPLIB_INCLUDE_DIR)
