# Finds nats.c as the imported target cnats::nats. Debian's own cnats-config.cmake names a
# static library the package does not ship, so find_package(cnats) fails there.
if(NOT TARGET cnats::nats)
  find_path(NATSC_INCLUDE_DIR nats/nats.h REQUIRED)
  find_library(NATSC_LIBRARY NAMES nats REQUIRED)
  add_library(cnats::nats UNKNOWN IMPORTED)
  set_target_properties(cnats::nats PROPERTIES IMPORTED_LOCATION "${NATSC_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${NATSC_INCLUDE_DIR}")
endif()
set(NatsC_FOUND TRUE)
