*** Settings ***
Library    RPyCRobotRemote    127.0.0.1    ${PORT}    timeout=30    AS    Remote

*** Test Cases ***
Keyword With Arguments
    ${sum}=    Remote.Add Numbers    2    40
    Should Be Equal As Integers    ${sum}    42

Keyword With Varargs And Named Argument
    ${joined}=    Remote.Join Words    a    b    c    sep=+
    Should Be Equal    ${joined}    a+b+c

Output Is Captured
    ${greeting}=    Remote.Greet    Robot
    Should Be Equal    ${greeting}    Hello, Robot!

Failing Keyword
    Remote.Fail With    on purpose
