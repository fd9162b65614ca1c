# A stand-in for Slicer's CMake package, to check without a Slicer build tree what the extension
# installs (never shipped). The macros mimic the file placement of Slicer's
# slicerMacroBuildScriptedModule and CTK's ctkMacroCompilePythonScript; nothing is compiled.
#
#   cmake -S . -B /tmp/sadm-build -DSlicer_DIR=$PWD/Testing/module/cmake
#   cmake --install /tmp/sadm-build --prefix /tmp/sadm-install
#   ls /tmp/sadm-install/lib/Slicer-5.10/qt-scripted-modules   # SADMModule.py  Resources/  sadm/
set(Slicer_USE_FILE ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_EXTENSION_GENERATE_CONFIG ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_EXTENSION_CPACK ${CMAKE_CURRENT_LIST_DIR}/empty.cmake)
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR lib/Slicer-5.10/qt-scripted-modules)
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR ${Slicer_QTSCRIPTEDMODULES_LIB_DIR})
set(BUILD_TESTING ON)
macro(ctkMacroCompilePythonScript)
  cmake_parse_arguments(MY "NO_INSTALL_SUBDIR;GLOBAL_TARGET" "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR" "SCRIPTS;RESOURCES" ${ARGN})
  if(NOT MY_SOURCE_DIR)
    set(MY_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  foreach(file ${MY_SCRIPTS} ${MY_RESOURCES})
    if(NOT EXISTS ${MY_SOURCE_DIR}/${file})
      message(FATAL_ERROR "missing ${MY_SOURCE_DIR}/${file}")
    endif()
    get_filename_component(dir ${MY_DESTINATION_DIR}/${file} DIRECTORY)
    file(COPY ${MY_SOURCE_DIR}/${file} DESTINATION ${dir})
  endforeach()
  install(DIRECTORY ${MY_DESTINATION_DIR}/ DESTINATION ${MY_INSTALL_DIR})
endmacro()
macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY_SLICER "WITH_GENERIC_TESTS;WITH_SUBDIR;VERBOSE" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  ctkMacroCompilePythonScript(TARGET_NAME ${MY_SLICER_NAME} SCRIPTS "${MY_SLICER_SCRIPTS}" RESOURCES "${MY_SLICER_RESOURCES}"
    DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR} INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR} NO_INSTALL_SUBDIR)
endmacro()
macro(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "SCRIPT" "" ${ARGN})
  message(STATUS "unittest ${MY_SCRIPT}")
endmacro()
