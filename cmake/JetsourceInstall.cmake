# Install rules and the CMake package: `cmake --install` puts the headers, the static libraries
# and lib/cmake/jetsource/ (config, version, targets, FindNatsC, EmbedMigrations) under the
# prefix, so that a consumer's find_package(jetsource) works (tests/find-package checks it).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(jetsource_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/jetsource)

install(TARGETS jetsource jetsource_testing jetsource_projections EXPORT jetsourceTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/framework/include/ ${PROJECT_SOURCE_DIR}/projections/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT jetsourceTargets NAMESPACE jetsource:: DESTINATION ${jetsource_cmake_dir})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/jetsourceConfig.cmake.in
  ${PROJECT_BINARY_DIR}/jetsourceConfig.cmake INSTALL_DESTINATION ${jetsource_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/jetsourceConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/jetsourceConfig.cmake
              ${PROJECT_BINARY_DIR}/jetsourceConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindNatsC.cmake
              ${PROJECT_SOURCE_DIR}/cmake/EmbedMigrations.cmake
        DESTINATION ${jetsource_cmake_dir})
